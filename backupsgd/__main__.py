from backupsgd.cli import run

run()
