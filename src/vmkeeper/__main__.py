from vmkeeper.cli.main import run

run()
