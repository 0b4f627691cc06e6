"""`paywire demo`: the closed loop end to end, as `make demo` runs it (the real local model,
the in-process chain, the operator, the gateway and the search API over loopback HTTP).
Short completions keep it quick; the books must verify and the report must be left."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from paywire.cli import app, run
from paywire.ledger import open_ledger
from paywire.tasks import TaskBook, TaskState

pytest.importorskip("llama_cpp", reason="the demo needs the llm extra (the local model)")


def test_the_demo_closes_the_loop(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--dir", str(folder), "--max-tokens", "8", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "The loop closed" in result.output and "Traceback" not in result.output
    report = (folder / "report.md").read_text()
    assert {path.stem for path in (folder / "keys").iterdir()} >= {"operator", "principal"}
    for line in ("ledger verified", "export audited offline", "Who paid whom", "AI tokens"):
        assert line in report
    ledger = open_ledger(f"sqlite:///{folder / 'ledger.db'}")
    try:
        books = TaskBook(ledger).books("research-1")
        assert books.task.state in (TaskState.ACCEPTED, TaskState.REJECTED)
        assert books.held_atomic == 0 and books.spent_atomic > 0
        assert set(books.models) == {"smollm2-135m-instruct"}
        assert {spend.provider for spend in books.spends} >= {
            spend.provider for spend in books.spends if spend.models
        }
        report_ok = ledger.log.verify()
        assert report_ok.ok and set(report_ok.assets.values()) == {0}
    finally:
        ledger.close()


def test_the_demo_refuses_a_folder_that_is_not_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me")
    assert run(["demo", "--dir", str(mine)]) != 0
    out, err = capsys.readouterr()
    assert "not a paywire demo folder" in err and "Traceback" not in out + err
    assert (mine / "precious.txt").read_text() == "keep me"
