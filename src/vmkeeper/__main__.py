from vmkeeper.cli.entry import run

run()
