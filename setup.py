"""Crypto-exchange market surveillance pipeline on Dagster."""
from setuptools import find_packages, setup

# Pinned together (../shared/STACK.md): dagster and its integration packages must move as one.
INSTALL_REQUIRES = [
    "dagster==1.13.27",
    "dagster-webserver==1.13.27",
    "dagster-postgres==0.29.27",
    "polars==2.1.0",
    "pyarrow==25.0.1",
    "numpy==2.4.6",
    "pandas==2.3.3",
    "sqlalchemy==2.0.58",
    "alembic==1.20.1",
    "psycopg[binary]==3.3.9",
    "psycopg2-binary==2.9.13",
    "pydantic==2.14.4",
    "pyyaml==6.0.3",
    "typer==0.29.2",
    "structlog==26.1.0",
    "openpyxl==3.1.5",
    "redis==8.1.0",
    # models: scikit-learn estimators, Keras 3 on TensorFlow (imported in ml/autoencoder.py only), MLflow registry
    "scikit-learn==1.9.1",
    "keras==3.15.1",
    "tensorflow-cpu==2.21.0",
    "protobuf==6.33.6",
    "mlflow==3.17.2",
    # the exchange's market data over MCP (client and our replay server)
    "mcp==2.3.0",
    "httpx==0.28.1",
    # reports
    "matplotlib==3.11.2",
    "reportlab==5.1.0",
]

EXTRAS_REQUIRE = {
    "dev": [
        "pytest==9.2.0",
        "pytest-xdist==3.8.0",
        "hypothesis==6.170.17",
        "fakeredis==2.41.0",
    ],
}

setup(
    name="surveillance-pipeline",
    version="0.1.0",
    description="Market-abuse surveillance for crypto exchanges: ingestion, features, detectors, alerts, on Dagster.",
    python_requires=">=3.11",
    packages=find_packages(include=["surveillance_pipeline*", "assets*", "resources*", "sensors*", "schedules*"]),
    package_data={"surveillance_pipeline": ["storage/migrations/*.mako", "storage/migrations/*.py",
                                            "storage/migrations/versions/*.py"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["surveillance=surveillance_pipeline.cli:app"]},
)
