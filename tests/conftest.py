"""Shared by the pytest suites under tests/ (mlflow, fuzz): puts this
folder on the import path, for `server_process` (starting a server)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
