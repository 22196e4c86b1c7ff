"""forgetbench.leaderboard.submission: the files of an entry read defensively (capped reads)."""

import pytest


def test_read_capped_reads_whole_files_up_to_the_cap_and_a_file_that_grew(tmp_path, monkeypatch):
    import os

    from forgetbench.leaderboard import submission as sub

    f = tmp_path / "results.json"
    f.write_bytes(b"x" * 100)
    assert sub.read_capped(f, 100) == b"x" * 100
    with pytest.raises(sub.Invalid, match="100 bytes, over the 99-byte cap"):
        sub.read_capped(f, 99)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(sub.Invalid, match="not a regular file"):
        sub.read_capped(tmp_path / "fifo", 100)
    # the file grows between the size check and the read: read on to the cap, and no further
    real = os.lstat(f)
    shrunk = os.stat_result((real.st_mode, *real[1:6], 10, *real[7:]))
    monkeypatch.setattr(sub.os, "lstat", lambda p: shrunk)
    assert sub.read_capped(f, 100) == b"x" * 100
    with pytest.raises(sub.Invalid, match="over the 50-byte cap"):
        sub.read_capped(f, 50)
