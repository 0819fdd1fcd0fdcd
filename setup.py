# The package list lives here only because the top-level judges/ folder ships
# as the `vlmdyn_judges` package (judge specs as data); everything else is in
# pyproject.toml.
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["vlmdyn_cli", "vlmdyn_cli.*"]) + ["vlmdyn_judges"],
    package_dir={"vlmdyn_judges": "judges"},
)
