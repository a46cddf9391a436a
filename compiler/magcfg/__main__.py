from magcfg.cli import run

run()
