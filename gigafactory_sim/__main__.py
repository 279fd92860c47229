"""``python -m gigafactory_sim`` runs the command line."""

from gigafactory_sim.cli import main

main()
