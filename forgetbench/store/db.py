"""The Store: one open store file. Opening checks the file and upgrades an older schema; the
connection (`_con`) and the transaction rule live here, the reads in forgetbench.store.queries, the
writes in forgetbench.store.writes (mixins of Store), the format in forgetbench.store.schema.

A task run is keyed by (model hash, task, task version, data hash, generation-settings hash) and is
written in one transaction with all its items, so an interrupted evaluation leaves either a whole
run or nothing, and a rerun skips what is done. Schema: README.md, "The DuckDB store".
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import duckdb

from forgetbench.errors import UserError
from forgetbench.runtime import dbfile
from forgetbench.store.queries import StoreReads
from forgetbench.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, expected_columns, table_columns
from forgetbench.store.writes import StoreWrites

_SCANNED: set[tuple] = set()  # (path, inode, size, mtime) of store files this process has read in full


class Store(StoreReads, StoreWrites):
    """The store file at `path`. Opening it never modifies a file that is not a healthy forgetbench
    store of this schema: the header is sniffed and the tables are inspected on a read-only
    connection first, and every fault becomes a UserError naming the real cause (forgetbench.runtime.dbfile)."""

    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = Path(path)
        self._old: str | None = None  # an older schema version, migrated when opened for writing
        exists = self.path.exists()
        if read_only and not exists:
            raise UserError(f"no store at {self.path}")
        if exists and self.path.is_dir():
            raise UserError(f"{self.path} is a directory, not a DuckDB file")
        if exists:
            why = dbfile.refusal(self.path)
            if why:
                raise UserError(f"{self.path} {why}; forgetbench did not change it (use another --db)")
            with self._guard():
                con = dbfile.connect(self.path, read_only=True)
                try:
                    self._check(con, read_only)
                finally:
                    con.close()
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)  # `--db results/new.duckdb` just works
            except OSError as e:
                raise UserError(dbfile.explain(e, self.path)) from e
        with self._guard():
            self._con = dbfile.connect(self.path, read_only=read_only)
        if not read_only:
            with self._guard():
                self._con.execute(SCHEMA)
                self._con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
            if self._old is not None:
                self._migrate(self._old)

    def _migrate(self, found: str) -> None:
        """Upgrade a store of schema `found` to SCHEMA_VERSION in one transaction (nothing is lost)."""
        with self._transaction("upgrading the store"):
            for sql in MIGRATIONS[found]:
                self._con.execute(sql)
        self._old = None

    @contextmanager
    def _guard(self, doing: str = ""):
        """DuckDB and OS errors on this file -> one UserError line with the real cause."""
        try:
            yield
        except (duckdb.Error, OSError) as e:
            raise UserError(dbfile.explain(e, self.path) + (f" [{doing}]" if doing else "")) from e

    def _check(self, con, read_only: bool) -> None:
        """Refuse a foreign, newer or structurally damaged file (read-only connection; nothing written)."""
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if not tables:
            if read_only:
                raise UserError(f"{self.path} is an empty DuckDB file, not a forgetbench store (nothing stored yet)")
            return
        if "meta" not in tables:
            raise UserError(f"{self.path} is a DuckDB file but not a forgetbench store (tables: {sorted(tables)[:8]});"
                            " forgetbench did not change it")
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        found = row[0] if row else "none"
        if found in MIGRATIONS:
            self._old = found  # readable as is; migrated when opened for writing
        elif found != SCHEMA_VERSION:
            newer = str(found).isdigit() and int(found) > int(SCHEMA_VERSION)
            raise UserError(f"{self.path}: store schema version {found}, this forgetbench reads {SCHEMA_VERSION}"
                            + ("; it was written by a newer forgetbench: upgrade forgetbench" if newer else "")
                            + " (the file was not changed)")
        want = expected_columns()
        got = table_columns(con)
        for t in sorted(set(got) & set(want)):
            if self._old is not None and got[t] == want[t][:len(got[t])]:
                continue  # the migration adds the missing columns
            if got[t] != want[t] and got[t] == want[t][:len(got[t])]:
                raise UserError(f"{self.path}: table {t} lacks the columns {', '.join(c for c, _ in want[t][len(got[t]):])}"
                                " of this forgetbench's store: it was written by an older forgetbench (the file was"
                                " not changed)")
            if got[t] != want[t]:
                raise UserError(f"the store {self.path} is damaged: table {t} has columns"
                                f" {', '.join(c for c, _ in got[t])[:200]}; a forgetbench store's {t} has"
                                f" {', '.join(c for c, _ in want[t])} (forgetbench did not change the file)")
        if not read_only:
            self._scan(con, sorted(set(got) & set(want)))

    def _scan(self, con, tables: list[str]) -> None:
        """Read every block of every table before writing to the file: DuckDB checks a block's checksum
        only when it reads it, so a damaged page would otherwise surface mid-evaluation, after this run
        had written to the file. ~10 ms per MB; skipped when this process already scanned the file as
        it is now."""
        st = self.path.stat()
        key = (str(self.path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
        if key in _SCANNED:
            return
        for t in tables:
            con.execute(f"SELECT sum(hash(COLUMNS(*))) FROM {t}").fetchall()
        _SCANNED.add(key)

    def close(self) -> None:
        with self._guard("closing"):
            self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except UserError:
            if exc is None:  # a failed close must not hide the error that is already on its way
                raise

    def _rollback(self, cause: Exception) -> None:
        """Undo a failed write. When the failure was the file (full disk, read-only, damage), DuckDB has
        often already aborted the transaction and ROLLBACK itself fails ("no transaction is active"):
        that must not hide the real cause, which is raised as one clear UserError."""
        try:
            self._con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        if isinstance(cause, OSError) or (isinstance(cause, duckdb.Error) and not isinstance(
                cause, (duckdb.ConstraintException, duckdb.ConversionException))):
            raise UserError(dbfile.explain(cause, self.path)) from cause

    @property
    def con(self):
        """The raw DuckDB connection, for tests that set up or inspect rows directly. forgetbench's own
        modules go through the methods (tests/test_store.py fails if one outside this package uses it)."""
        return self._con

    @contextmanager
    def _transaction(self, doing: str):
        """One logical write: BEGIN, the body's statements on the yielded connection, COMMIT; on any
        failure ROLLBACK (the store is left as it was) and the cause is raised (file faults as UserError)."""
        with self._guard(doing):
            self._con.execute("BEGIN TRANSACTION")
        try:
            yield self._con
            self._con.execute("COMMIT")
        except Exception as e:
            self._rollback(e)
            raise
