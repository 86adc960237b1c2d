from chokepoint.cli.main import app

app()
