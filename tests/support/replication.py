"""A streaming hot standby of a TemporaryPostgres, made with `pg_basebackup -R`."""

from __future__ import annotations

import subprocess

from tests.support.postgres import ADMIN_USER, TemporaryPostgres


class TemporaryStandby(TemporaryPostgres):
    """A read-only copy of `primary` that replays its WAL as it is written."""

    def __init__(self, primary: TemporaryPostgres) -> None:
        super().__init__(options={"hot_standby": "on"})
        self.primary = primary

    def _create_cluster(self) -> None:
        self._run(
            str(self.bindir / "pg_basebackup"),
            "-h", "127.0.0.1",
            "-p", str(self.primary.port),
            "-U", ADMIN_USER,
            "-D", str(self.datadir),
            "-R",  # write standby.signal and primary_conninfo
            "-X", "stream",
            "--checkpoint=fast",
        )  # fmt: skip

    def stop_server(self) -> None:
        """Stop the standby but keep its files (to show the service survives it)."""
        if self.pid is not None:
            subprocess.run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w",
                 "stop"],
                capture_output=True, user=self._user, cwd=self.base, check=False,
            )  # fmt: skip
            self.pid = None
