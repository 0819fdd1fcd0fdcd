from vlmdyn_cli.cli.app import run

run()
