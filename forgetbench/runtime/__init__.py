"""The machine a run is on: dtype and threads (hardware), progress bars, quiet stdio, process fan-out, DuckDB files."""
