"""The EU data-centre report (Energy Efficiency Directive (EU) 2023/1791 Art. 12 / Annex VII; Delegated
Regulation (EU) 2024/1364): cooling water, waste-heat reuse, renewable contracts and the yearly indicators.

Modules: :mod:`.cooling` (cooling kinds: water and PUE against the weather), :mod:`.config` (``heat_reuse:``,
PPAs, the ``eed:`` identity block), :mod:`.prepare` (per-segment inputs), :mod:`.probe` (exact per-year
integrals during the run), :mod:`.report` (the report's rows, JSON and CSV), :mod:`.normals` (hourly
temperatures built from monthly climate normals).
"""
