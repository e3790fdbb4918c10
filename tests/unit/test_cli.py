"""The one-shot commands as a newcomer meets them: in-process, no AWS, no daemon."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_source import alias_bomb

from ecsop.cli import app as cli


@pytest.mark.timeout(20)
def test_validate_refuses_an_alias_bomb_quickly_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert cli.main(["validate", str(bomb)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{bomb}:7: alias *e takes the document past 100000 YAML nodes")
    assert len(out) < 400
    assert "1 error(s)" in err


def test_validate_reports_a_symlink_loop_as_a_spec_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    assert cli.main(["validate", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / 'loop.yaml'}: cannot resolve path: symlink loop\n"
    assert "Traceback" not in err and "1 error(s)" in err
