"""vidgn.tools.files: the writers of clean lists, failure lists and settings records never leave a
half-written file or a stray temporary one, and the write probe answers truly (also as root)."""

import pytest

from vidgn.tools.files import cannot_create_in, write_text_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    out = tmp_path / "clean.txt"
    write_text_atomic(out, "a.mp4 0\n")
    assert out.read_text() == "a.mp4 0\n"
    write_text_atomic(out, "a.mp4 0\nb.mp4 1\n")        # replaced whole
    assert out.read_text() == "a.mp4 0\nb.mp4 1\n"
    # The rename fails (a folder is in the way), after the temporary file was written.
    blocked = tmp_path / "blocked"
    (blocked / "inside").mkdir(parents=True)
    with pytest.raises(OSError):
        write_text_atomic(blocked, "x\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "clean.txt"]
    assert out.read_text() == "a.mp4 0\nb.mp4 1\n"


def test_the_probe_answers_for_a_writable_folder_and_a_pseudo_file_system(tmp_path):
    assert cannot_create_in(tmp_path) is None
    assert list(tmp_path.iterdir()) == []               # the probe file is gone
    assert cannot_create_in("/proc") is not None        # refused even for root
    assert cannot_create_in(tmp_path / "missing") is not None
