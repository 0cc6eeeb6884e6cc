"""How rule findings and model scores become one risk score and a risk level (`engine:` in the config)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EngineSettings(BaseModel):
    """Every rule alert starts from its rule's score (0..1, how far past its thresholds the episode went).
    Other signals on the same accounts and day add to it as independent evidence (noisy-OR):
    score = 1 − (1 − rule) · Π (1 − weight_i · signal_i), so two weak signals make a stronger one, nothing
    passes 1, and a signal of 0 changes nothing. The risk level follows from the combined score.
    A model score alone raises an `ml_anomaly` alert only under every one of the ml_* conditions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk_high: float = Field(0.8, gt=0.0, le=1.0, description="combined score from which an alert is HIGH")
    risk_medium: float = Field(0.5, gt=0.0, le=1.0, description="... MEDIUM (below: LOW)")
    model_weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of the ensemble score of an alert's "
                                "accounts (when at or above the ensemble's threshold) in its combined score")
    model_evidence_max_share: float = Field(0.05, gt=0.0, le=1.0, description="... and only when the account-day "
                                            "is also among this top share of the day's scored accounts")
    corroboration_weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of another pattern's rule alert "
                                        "on the same accounts and day")
    ml_alerts: bool = Field(True, description="raise ml_anomaly alerts for account-days only the models flag")
    ml_min_score: float = Field(0.8, gt=0.0, le=1.0, description="ensemble score needed for an ml_anomaly alert")
    ml_max_share: float = Field(0.005, gt=0.0, le=1.0, description="... and the account-day among this top share "
                                "of the day's scored accounts (a population-relative check: a score cut learned "
                                "on other data can flag a whole unfamiliar population)")
    ml_min_accounts: int = Field(50, ge=1, description="... and at least this many accounts scored that day")
    ml_min_models: int = Field(2, ge=1, description="... and at least this many models at or above their own "
                               "boundary")
    ml_max_risk: Literal["HIGH", "MEDIUM", "LOW"] = Field("MEDIUM", description="a model-only alert is a lead "
                                                          "for an analyst: its risk level is capped here")
    link_days: int = Field(3, ge=0, description="an alert with the same pattern, symbol and accounts raised within "
                           "this many days before links to the earlier one (occurrence, first_seen)")
    top_features: int = Field(3, ge=1, le=10, description="features named in a model explanation")
    max_evidence: int = Field(500, ge=1, description="trade / order ids kept per model-only alert")

    @model_validator(mode="after")
    def _ordered(self) -> EngineSettings:
        if self.risk_medium > self.risk_high:
            raise ValueError("risk_medium must not exceed risk_high")
        return self
