"""Progress off a terminal: no live display, one line per finished phase (logs and CI see progress)."""

import io
import sys

from objlab.progress import Board


def test_a_finished_phase_prints_one_line_when_stderr_is_not_a_terminal(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with Board() as board:
        line = board.line("organism demo: pretrain", 4)
        line.advance(4, info="loss 0.036")
        assert stream.getvalue() == ""  # nothing while it runs
        line.close()
    assert "organism demo: pretrain: 4/4 loss 0.036 (0 s)" in stream.getvalue()


def test_a_quiet_board_prints_nothing(monkeypatch, capsys):
    with Board(enabled=False) as board:
        line = board.line("grid", 2)
        line.advance(2)
        line.close()
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
