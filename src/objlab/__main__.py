"""``python -m objlab``: the same CLI as the ``objlab`` command."""

from objlab.cli import app

if __name__ == "__main__":
    app()
