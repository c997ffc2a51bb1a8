"""List files: every accepted variant parses to the right (path, label), and bad lists fail early with
one error naming the lines, the total count and the fix."""
from __future__ import annotations

import pytest

from vidgn.data.lists import (ListError, VideoEntry, find_classes_file, parse_list, read_classes,
                              resolve, write_list)

CLASSES = ["abseiling", "passing American football (in game)", "petting animal (not cat)", "zumba"]


@pytest.fixture
def root(tmp_path):
    """A data root with empty files standing in for videos (only existence is checked here)."""
    for rel in ["abseiling/a1.mp4", "abseiling/a b (2).mp4",
                "passing American football (in game)/p1.webm",
                "petting animal (not cat)/x,1.mp4", "zumba/z1.mkv"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n\n")
    return tmp_path


def _parse(root, text, **kw):
    lst = root / "list.txt"
    lst.write_text(text)
    return parse_list(lst, root, **kw)


def _pairs(entries):
    return [(e.path, e.label) for e in entries]


def test_space_separated_integer_labels_with_spaces_and_parentheses_in_paths(root):
    entries = _parse(root, "abseiling/a1.mp4 0\n"
                           "abseiling/a b (2).mp4 0\n"
                           "passing American football (in game)/p1.webm 1\n")
    assert _pairs(entries) == [("abseiling/a1.mp4", 0), ("abseiling/a b (2).mp4", 0),
                               ("passing American football (in game)/p1.webm", 1)]
    assert [e.line for e in entries] == [1, 2, 3]


def test_comma_separated_and_quoted_csv(root):
    entries = _parse(root, "abseiling/a b (2).mp4,0\n"
                           '"petting animal (not cat)/x,1.mp4",2\n'
                           "zumba/z1.mkv, 3\n")
    assert _pairs(entries) == [("abseiling/a b (2).mp4", 0), ("petting animal (not cat)/x,1.mp4", 2),
                               ("zumba/z1.mkv", 3)]


def test_comma_inside_path_with_space_separator(root):
    assert _pairs(_parse(root, "petting animal (not cat)/x,1.mp4 2\n")) == [
        ("petting animal (not cat)/x,1.mp4", 2)]


def test_class_name_labels_via_classes_txt_including_names_with_spaces(root):
    entries = _parse(root, "abseiling/a1.mp4 abseiling\n"
                           "passing American football (in game)/p1.webm passing American football (in game)\n"
                           "petting animal (not cat)/x,1.mp4,petting animal (not cat)\n"
                           "zumba/z1.mkv zumba\n")
    assert _pairs(entries) == [("abseiling/a1.mp4", 0),
                               ("passing American football (in game)/p1.webm", 1),
                               ("petting animal (not cat)/x,1.mp4", 2), ("zumba/z1.mkv", 3)]


def test_comments_blank_lines_header_and_crlf(root):
    entries = _parse(root, "path label\r\n# a comment\r\n\r\n   \r\nzumba/z1.mkv 3\r\n  # indented comment\n")
    assert _pairs(entries) == [("zumba/z1.mkv", 3)]
    assert entries[0].line == 5
    assert _pairs(_parse(root, "video,label\nzumba/z1.mkv,3\n")) == [("zumba/z1.mkv", 3)]


def test_absolute_paths_ignore_data_root(root, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    video = other / "clip with space.mp4"
    video.write_bytes(b"")
    entries = _parse(root, f"{video} 1\nzumba/z1.mkv 3\n")
    assert _pairs(entries) == [(str(video), 1), ("zumba/z1.mkv", 3)]
    assert resolve(entries[0], root) == video
    assert resolve(entries[1], root) == root / "zumba/z1.mkv"


def test_unlabeled_list(root):
    entries = _parse(root, "abseiling/a b (2).mp4\nzumba/z1.mkv\n", allow_unlabeled=True)
    assert _pairs(entries) == [("abseiling/a b (2).mp4", -1), ("zumba/z1.mkv", -1)]
    with pytest.raises(ListError, match="data.predict_list"):
        _parse(root, "zumba/z1.mkv\n")


def test_write_list_round_trip_with_awkward_paths(root):
    rows = [("abseiling/a b (2).mp4", 0), ("petting animal (not cat)/x,1.mp4", 2),
            ("passing American football (in game)/p1.webm", "passing American football (in game)")]
    write_list(root / "out.txt", rows)
    entries = parse_list(root / "out.txt", root)
    assert _pairs(entries) == [(rows[0][0], 0), (rows[1][0], 2), (rows[2][0], 1)]
    with pytest.raises(ValueError):
        write_list(root / "bad.txt", [("a\nb.mp4", 0)])


def test_missing_files_one_error_with_lines_count_and_fix(root):
    lines = ["zumba/z1.mkv 3"] + [f"zumba/missing{i}.mp4 3" for i in range(7)]
    with pytest.raises(ListError) as err:
        _parse(root, "\n".join(lines) + "\n")
    msg = str(err.value)
    assert "7 video(s) not found" in msg
    assert "list.txt:2:" in msg and "list.txt:6:" in msg
    assert "list.txt:7:" not in msg  # only the first 5 offenders are quoted ...
    assert "and 2 more" in msg  # ... and the rest counted
    assert "vidgn check-videos" in msg and "--data-root" in msg
    # The same list loads when files are not checked (check-videos reports them itself).
    assert len(_parse(root, "\n".join(lines) + "\n", check_files=False)) == 8


def test_unknown_labels_and_missing_files_in_one_error(root):
    text = ("zumba/z1.mkv dancing\n"  # unknown class name
            "zumba/z1.mkv 4\n"  # index out of range (4 classes)
            "zumba/nope.mkv 3\n"  # missing file
            "zumba/z1.mkv 3\n")
    with pytest.raises(ListError) as err:
        _parse(root, text)
    msg = str(err.value)
    assert "2 line(s) with an unknown or missing label" in msg
    assert "list.txt:1: label 'dancing' (not a class name in classes.txt)" in msg
    assert "list.txt:2: label '4' (index out of range 0..3)" in msg
    assert "1 video(s) not found" in msg and "list.txt:3:" in msg
    assert "classes.txt" in msg


def test_class_names_without_classes_file_are_an_error(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    lst = tmp_path / "l.txt"
    lst.write_text("a.mp4 abseiling\n")
    with pytest.raises(ListError, match="no classes.txt was found"):
        parse_list(lst, tmp_path)
    # Integer labels need no classes file.
    lst.write_text("a.mp4 7\n")
    assert parse_list(lst, tmp_path) == [VideoEntry("a.mp4", 7, 1)]


def test_classes_file_lookup_and_validation(root, tmp_path_factory):
    lists_dir = tmp_path_factory.mktemp("lists")
    assert find_classes_file(lists_dir / "train.txt", root) == root / "classes.txt"
    (lists_dir / "classes.txt").write_text("b\na\n")
    assert find_classes_file(lists_dir / "train.txt", root) == lists_dir / "classes.txt"
    assert find_classes_file(lists_dir / "train.txt", lists_dir / "nowhere") == lists_dir / "classes.txt"
    assert read_classes(root / "classes.txt") == CLASSES
    (lists_dir / "dup.txt").write_text("a\nb\na\n")
    with pytest.raises(ListError, match="repeats line 1"):
        read_classes(lists_dir / "dup.txt")
    (lists_dir / "gap.txt").write_text("a\n\nb\n")
    with pytest.raises(ListError, match="blank line"):
        read_classes(lists_dir / "gap.txt")


def test_empty_list_is_an_error(root):
    with pytest.raises(ListError, match="no videos listed"):
        _parse(root, "# nothing\n\n")


def test_unlabeled_list_still_reports_unknown_labels_of_existing_files(root):
    with pytest.raises(ListError, match="label 'dancing'"):
        _parse(root, "zumba/z1.mkv dancing\n", allow_unlabeled=True)


# -- issue 9: user errors in list files get a short message naming file:line and the fix -----------

def test_unknown_class_name_with_spaces_is_quoted_whole(root):
    # The video exists: the whole rest of the line is the label that matched no class.
    with pytest.raises(ListError) as err:
        _parse(root, "zumba/z1.mkv passing American football (not in game)\n")
    msg = str(err.value)
    assert "list.txt:1: label 'passing American football (not in game)' (not a class name in classes.txt" in msg
    assert "'game)'" not in msg
    # Same with a comma separator, and a close miss gets a suggestion.
    with pytest.raises(ListError) as err:
        _parse(root, "zumba/z1.mkv,Passing American football (in game)\n")
    msg = str(err.value)
    assert "label 'Passing American football (in game)'" in msg
    assert "did you mean 'passing American football (in game)'" in msg
    # The video is missing but its name ends in a video extension: the split is still clear.
    with pytest.raises(ListError) as err:
        _parse(root, "abseiling/gone (3).mp4 petting animal (cat)\n", check_files=False)
    assert "label 'petting animal (cat)' (not a class name" in str(err.value)
    # Neither: the split is ambiguous, so the whole line is quoted.
    with pytest.raises(ListError) as err:
        _parse(root, "zumba/gone clip petting animal (cat)\n")
    msg = str(err.value)
    assert "list.txt:1: 'zumba/gone clip petting animal (cat)'" in msg
    assert "neither a class name in classes.txt nor a class index" in msg
    # A one-word label after a path without separators is unambiguous as before.
    with pytest.raises(ListError, match=r"list.txt:1: label 'dancing' \(not a class name"):
        _parse(root, "zumba/gone dancing\n", check_files=False)


def test_directory_listed_as_video_says_it_is_a_directory(root):
    with pytest.raises(ListError) as err:
        _parse(root, "zumba/z1.mkv 3\nzumba 3\nabseiling/ 0\n")
    msg = str(err.value)
    assert "2 path(s) are directories, not video files" in msg
    assert f"list.txt:2: {root / 'zumba'} is a directory" in msg
    assert "list.txt:3:" in msg
    assert "not found" not in msg
    # Unlabeled (predict) lists too.
    with pytest.raises(ListError, match="is a directory"):
        _parse(root, "zumba\n", allow_unlabeled=True)


def _parse_bytes(root, data, name="list.txt", **kw):
    lst = root / name
    lst.write_bytes(data)
    return parse_list(lst, root, **kw)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_list_says_save_as_utf8(root, encoding):
    with pytest.raises(ListError) as err:
        _parse_bytes(root, "zumba/z1.mkv 3\nabseiling/a1.mp4 0\n".encode(encoding))
    msg = str(err.value)
    assert str(root / "list.txt") in msg
    assert "UTF-16" in msg or "UTF-32" in msg
    assert "save it as UTF-8" in msg


def test_non_utf8_list_names_the_lines_and_the_fix(root):
    text = "zumba/z1.mkv 3\nzumba/caf\xe9.mkv 3\nzumba/z1.mkv 3\nzumba/na\xefve.mkv 3\n"
    with pytest.raises(ListError) as err:
        _parse_bytes(root, text.encode("cp1252"))
    msg = str(err.value)
    assert "2 line(s) are not valid UTF-8" in msg
    assert "list.txt:2: 'zumba/caf\ufffd.mkv 3'" in msg and "list.txt:4:" in msg
    assert "save it as UTF-8" in msg


def test_utf8_bom_just_works_in_lists_and_classes_files(root):
    (root / "classes.txt").write_bytes("\n".join(CLASSES).encode("utf-8-sig"))
    assert read_classes(root / "classes.txt") == CLASSES
    entries = _parse_bytes(root, "abseiling/a1.mp4 abseiling\nzumba/z1.mkv 3\n".encode("utf-8-sig"))
    assert _pairs(entries) == [("abseiling/a1.mp4", 0), ("zumba/z1.mkv", 3)]


def test_utf16_classes_file_says_save_as_utf8(root):
    (root / "classes.txt").write_bytes("\n".join(CLASSES).encode("utf-16"))
    with pytest.raises(ListError, match=r"classes.txt: .*UTF-16.*save it as UTF-8"):
        read_classes(root / "classes.txt")


@pytest.mark.parametrize("line", ["zumba/z1.mkv 3 7 12", "zumba/z1.mkv 1 2", "zumba/z1.mkv,1,2",
                                  '"zumba/z1.mkv", 0, 3'])
@pytest.mark.parametrize("check_files", [True, False])
def test_multi_label_line_is_not_supported(root, line, check_files):
    with pytest.raises(ListError) as err:
        _parse(root, f"abseiling/a1.mp4 0\n{line}\n", check_files=check_files)
    msg = str(err.value)
    assert "1 multi-label line(s)" in msg
    assert "list.txt:2: 'zumba/z1.mkv' has" in msg
    assert "single-label" in msg
    assert "not found" not in msg and "out of range" not in msg


def test_path_ending_in_numbers_is_not_taken_for_multi_label(root):
    (root / "zumba" / "take 1").write_bytes(b"")  # a real file whose name ends in a number
    assert _pairs(_parse(root, "zumba/take 1 2\n")) == [("zumba/take 1", 2)]


def test_class_names_sharing_their_last_word_longest_match_wins(tmp_path):
    # parse_list looks names up by the line's last word; the longest name that ends the line after a
    # separator must still win, a name glued to the path ("xa b c") must fall back to a shorter
    # one, and tabs count as separators like spaces.
    classes = ["c", "b c", "a b c", "zumba"]
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n")
    entries = _parse(tmp_path, "v1.mp4 a b c\n"
                               "a b.mp4 b c\n"
                               "a b c.mp4\tb c\n"
                               "v3.mp4 xa b c\n"
                               "v4.mp4 c\n"
                               "v5 c.mp4 zumba\n", check_files=False)
    assert _pairs(entries) == [("v1.mp4", 2), ("a b.mp4", 1), ("a b c.mp4", 1), ("v3.mp4 xa", 1),
                               ("v4.mp4", 0), ("v5 c.mp4", 3)]
