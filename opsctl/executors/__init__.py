"""How one pipeline stage runs: on the host (``local``) or in a container
(``docker``), behind the one interface in :mod:`opsctl.executors.base`."""
