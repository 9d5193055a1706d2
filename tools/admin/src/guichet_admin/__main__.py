from guichet_admin.cli import app

app(prog_name="guichet-admin")
