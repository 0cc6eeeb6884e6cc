"""The rule detectors' thresholds as one configuration section (`detectors:` in config/surveillance.yaml),
and the registry of detectors by that section's keys."""
from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from surveillance_pipeline.detectors.circular import CircularTradingSettings, detect_circular_trading
from surveillance_pipeline.detectors.excessive import ExcessiveTradingSettings, detect_excessive_trading
from surveillance_pipeline.detectors.layering import LayeringSettings, detect_layering
from surveillance_pipeline.detectors.pump import PumpAndDumpSettings, detect_pump_and_dump
from surveillance_pipeline.detectors.quote_stuffing import QuoteStuffingSettings, detect_quote_stuffing
from surveillance_pipeline.detectors.spoofing import SpoofingSettings, detect_spoofing
from surveillance_pipeline.detectors.wash import WashTradingSettings, detect_wash_trading

# settings key -> detector, in the order they run
RULES: dict[str, Callable] = {
    "wash_trading": detect_wash_trading,
    "circular_trading": detect_circular_trading,
    "pump_and_dump": detect_pump_and_dump,
    "spoofing": detect_spoofing,
    "layering": detect_layering,
    "quote_stuffing": detect_quote_stuffing,
    "excessive_trading": detect_excessive_trading,
}


class RulesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    history_days: int = Field(7, ge=0, le=60, description="days of trades before the day that detectors may "
                              "read for baselines (a pump's usual volume)")
    merge_gap_seconds: float = Field(300.0, ge=0.0, description="findings of one pattern, symbol and account set "
                                     "closer than this merge into one alert (one alert per episode)")
    risk_high: float = Field(0.8, gt=0.0, le=1.0, description="score from which a rule alert is HIGH")
    risk_medium: float = Field(0.5, gt=0.0, le=1.0, description="score from which a rule alert is MEDIUM")
    batch_rows: int = Field(5_000_000, ge=1_000, description="a day with more trades + order events than this "
                            "runs the per-symbol detectors a batch of symbols at a time (bounded memory, same alerts)")
    max_evidence: int = Field(500, ge=1, description="trade / order ids kept in an alert's evidence")
    wash_trading: WashTradingSettings = WashTradingSettings()
    circular_trading: CircularTradingSettings = CircularTradingSettings()
    pump_and_dump: PumpAndDumpSettings = PumpAndDumpSettings()
    spoofing: SpoofingSettings = SpoofingSettings()
    layering: LayeringSettings = LayeringSettings()
    quote_stuffing: QuoteStuffingSettings = QuoteStuffingSettings()
    excessive_trading: ExcessiveTradingSettings = ExcessiveTradingSettings()

    @model_validator(mode="after")
    def _levels_ordered(self) -> RulesSettings:
        if self.risk_medium > self.risk_high:
            raise ValueError(f"risk_medium ({self.risk_medium}) must not exceed risk_high ({self.risk_high})")
        return self
