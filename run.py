"""Entry point: `flask --app run …` and gunicorn `run:app`."""
from app import create_app

app = create_app()

if __name__ == "__main__":
    app.run()
