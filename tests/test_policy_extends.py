"""``extends`` reaches packaged packs and files under the pack's own directory only; cycles exit 2; a
file outside is refused without being read (nothing of it is printed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tactful.errors import PolicyError
from tactful.policy.parse import load_pack
from tactful.testing.cli import run_cli

SECRET = "root:x:0:0:SECRET-CONTENT:/root:/bin/bash"


def _pack(path: Path, name: str, extends: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: {name}\nversion: 1\nextends: {extends}\n", encoding="utf-8")
    return path


def _lint(pack: Path) -> tuple[int, str]:
    code, out, err = run_cli(["policy", "lint", str(pack)])
    return code, out + err


def test_extends_default_and_a_sibling_file_load(tmp_path: Path) -> None:
    base = _pack(tmp_path / "base.yaml", "base", "default")
    child = _pack(tmp_path / "child.yaml", "child", "base.yaml")
    assert load_pack(child).extends == "base.yaml"
    # top.yaml -> sub/mid.yaml -> ../base.yaml: every file is under top.yaml's directory
    _pack(tmp_path / "sub" / "mid.yaml", "mid", "../base.yaml")
    top = _pack(tmp_path / "top.yaml", "top", "sub/mid.yaml")
    assert load_pack(top).name == "top"
    assert load_pack(base).rules == load_pack(top).rules


def test_a_pack_in_a_subdirectory_cannot_extend_its_parent_directory(tmp_path: Path) -> None:
    _pack(tmp_path / "base.yaml", "base", "default")
    nested = _pack(tmp_path / "sub" / "nested.yaml", "nested", "../base.yaml")
    with pytest.raises(PolicyError, match="outside the pack's directory"):
        load_pack(nested)


def test_extends_outside_the_pack_directory_is_refused_without_reading_it(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "secret.yaml"
    outside.parent.mkdir()
    outside.write_text(SECRET + "\n", encoding="utf-8")
    packs = tmp_path / "packs"
    for extends in (str(outside), "../elsewhere/secret.yaml", "/etc/passwd"):
        pack = _pack(packs / "p.yaml", "p", extends)
        code, text = _lint(pack)
        assert code == 2, text
        assert "outside the pack's directory" in text and "it was not read" in text
        assert "SECRET" not in text and "root:x" not in text


def test_a_symlink_inside_pointing_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.yaml"
    outside.write_text(SECRET + "\n", encoding="utf-8")
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "link.yaml").symlink_to(outside)
    code, text = _lint(_pack(packs / "p.yaml", "p", "link.yaml"))
    assert code == 2 and "outside the pack's directory" in text and "SECRET" not in text


def test_a_nested_pack_cannot_climb_out_through_its_parent(tmp_path: Path) -> None:
    # the root pack is in packs/; a pack it extends may not reach above packs/ either
    (tmp_path / "secret.yaml").write_text(SECRET + "\n", encoding="utf-8")
    _pack(tmp_path / "packs" / "sub" / "mid.yaml", "mid", "../../secret.yaml")
    code, text = _lint(_pack(tmp_path / "packs" / "top.yaml", "top", "sub/mid.yaml"))
    assert code == 2 and "outside the pack's directory" in text and "SECRET" not in text


@pytest.mark.parametrize("layout", ["self", "pair", "dot-path"])
def test_cycles_exit_2(tmp_path: Path, layout: str) -> None:
    if layout == "self":
        first = _pack(tmp_path / "a.yaml", "a", "a.yaml")
    elif layout == "pair":
        first = _pack(tmp_path / "a.yaml", "a", "b.yaml")
        _pack(tmp_path / "b.yaml", "b", "a.yaml")
    else:  # the same file named differently must still be seen as the same
        first = _pack(tmp_path / "a.yaml", "a", "./sub/../b.yaml")
        (tmp_path / "sub").mkdir()
        _pack(tmp_path / "b.yaml", "b", "./a.yaml")
    code, text = _lint(first)
    assert code == 2, text
    assert "extends: cycle" in text and "Traceback" not in text


def test_a_missing_parent_names_the_path(tmp_path: Path) -> None:
    code, text = _lint(_pack(tmp_path / "a.yaml", "a", "nope.yaml"))
    assert code == 2 and "no pack at" in text


def test_a_pack_given_as_text_extends_packaged_packs_only() -> None:
    from tactful.policy.parse import parse_pack

    assert parse_pack("name: t\nversion: 1\nextends: default\n").name == "t"
    with pytest.raises(PolicyError, match="can only extend packaged packs"):
        parse_pack("name: t\nversion: 1\nextends: /etc/passwd\n")


def test_a_pack_file_that_is_not_a_mapping_is_not_echoed(tmp_path: Path) -> None:
    # `-p /etc/passwd` parses as one YAML text: the error names its type, never its content
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_pack(secret)
    assert "pack: expected a mapping, got a text" in info.value.message
    code, out, err = run_cli(["policy", "lint", str(secret)])
    assert code == 2 and "expected a mapping, got a text" in err
    assert "/bin/bash" not in out + err and "daemon" not in out + err
