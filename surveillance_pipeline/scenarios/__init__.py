"""Labelled synthetic market scenarios: realistic background flow plus injected abuse episodes.

    from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario, write_scenario
    scenario = generate_scenario(ScenarioSpec(days=2, seed=7))
    write_scenario(scenario, Path("data/scenario"))  # trades.csv, orders.csv, labels.csv
"""
from surveillance_pipeline.scenarios.generator import generate_scenario
from surveillance_pipeline.scenarios.spec import KNOWN_PROFILES, Scenario, ScenarioSpec, SymbolProfile, profile_for
from surveillance_pipeline.scenarios.writer import write_scenario

__all__ = [
    "KNOWN_PROFILES",
    "Scenario",
    "ScenarioSpec",
    "SymbolProfile",
    "generate_scenario",
    "profile_for",
    "write_scenario",
]
