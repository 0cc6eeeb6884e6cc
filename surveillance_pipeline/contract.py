"""The data contract: column names, dtypes and vocabularies shared by every module.

Other modules import names from here instead of retyping strings (see ../shared/DESIGN.md).
"""
from __future__ import annotations

from enum import StrEnum

import polars as pl

# Timestamps are stored as UTC with microsecond precision (PostgreSQL's timestamptz precision).
TIMESTAMP_DTYPE = pl.Datetime("us", "UTC")


class Side(StrEnum):
    """The taker's side of a trade, or the side of an order."""

    BUY = "buy"
    SELL = "sell"


class OrderEvent(StrEnum):
    """Order lifecycle events; fills are the trades, linked by order id."""

    NEW = "new"
    CANCEL = "cancel"
    MODIFY = "modify"
    FILL = "fill"


class MarketType(StrEnum):
    SPOT = "spot"
    FUTURES = "futures"


class Pattern(StrEnum):
    """Alert `pattern` vocabulary."""

    WASH_TRADING = "wash_trading"
    CIRCULAR_TRADING = "circular_trading"
    PUMP_AND_DUMP = "pump_and_dump"
    SPOOFING = "spoofing"
    LAYERING = "layering"
    QUOTE_STUFFING = "quote_stuffing"
    EXCESSIVE_TRADING = "excessive_trading"
    ML_ANOMALY = "ml_anomaly"
    FUNDING_RATE_MANIPULATION = "funding_rate_manipulation"
    LIQUIDATION_HUNTING = "liquidation_hunting"
    BASIS_MANIPULATION = "basis_manipulation"
    POSITION_CONCENTRATION = "position_concentration"
    FORCED_LIQUIDATION = "forced_liquidation"
    FUNDING_RATE_FARMING = "funding_rate_farming"


TRADE_LEVEL_PATTERNS = (
    Pattern.WASH_TRADING,
    Pattern.CIRCULAR_TRADING,
    Pattern.PUMP_AND_DUMP,
    Pattern.SPOOFING,
    Pattern.LAYERING,
    Pattern.QUOTE_STUFFING,
    Pattern.EXCESSIVE_TRADING,
)


class RiskLevel(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class Trade:
    """Column names of the trades table."""

    TRADE_ID = "trade_id"
    TIMESTAMP = "timestamp"
    SYMBOL = "symbol"
    SIDE = "side"
    PRICE = "price"
    QUANTITY = "quantity"
    BUYER_ID = "buyer_id"
    SELLER_ID = "seller_id"
    BUYER_ORDER_ID = "buyer_order_id"
    SELLER_ORDER_ID = "seller_order_id"
    MARKET_TYPE = "market_type"
    QUOTE_QUANTITY = "quote_quantity"
    FEE = "fee"


TRADE_SCHEMA: dict[str, pl.DataType] = {
    Trade.TRADE_ID: pl.String(),
    Trade.TIMESTAMP: TIMESTAMP_DTYPE,
    Trade.SYMBOL: pl.String(),
    Trade.SIDE: pl.String(),
    Trade.PRICE: pl.Float64(),
    Trade.QUANTITY: pl.Float64(),
    Trade.BUYER_ID: pl.String(),
    Trade.SELLER_ID: pl.String(),
    Trade.BUYER_ORDER_ID: pl.String(),
    Trade.SELLER_ORDER_ID: pl.String(),
    Trade.MARKET_TYPE: pl.String(),
    Trade.QUOTE_QUANTITY: pl.Float64(),
    Trade.FEE: pl.Float64(),
}
TRADE_REQUIRED = (Trade.TRADE_ID, Trade.TIMESTAMP, Trade.SYMBOL, Trade.SIDE, Trade.PRICE, Trade.QUANTITY)
# A trade is identified by its venue id within its symbol (venues number trades per market).
TRADE_KEY = (Trade.SYMBOL, Trade.TRADE_ID)


class Order:
    """Column names of the order-events table."""

    ORDER_ID = "order_id"
    TIMESTAMP = "timestamp"
    USER_ID = "user_id"
    SYMBOL = "symbol"
    SIDE = "side"
    PRICE = "price"
    QUANTITY = "quantity"
    EVENT = "event"
    ORDER_TYPE = "order_type"
    MARKET_TYPE = "market_type"


ORDER_SCHEMA: dict[str, pl.DataType] = {
    Order.ORDER_ID: pl.String(),
    Order.TIMESTAMP: TIMESTAMP_DTYPE,
    Order.USER_ID: pl.String(),
    Order.SYMBOL: pl.String(),
    Order.SIDE: pl.String(),
    Order.PRICE: pl.Float64(),
    Order.QUANTITY: pl.Float64(),
    Order.EVENT: pl.String(),
    Order.ORDER_TYPE: pl.String(),
    Order.MARKET_TYPE: pl.String(),
}
ORDER_REQUIRED = (Order.ORDER_ID, Order.TIMESTAMP, Order.USER_ID, Order.SYMBOL, Order.SIDE, Order.EVENT)
# Price and quantity are required on every event but a cancel (a cancel refers to the resting order)
# and a market order's price.
ORDER_EVENTS_WITHOUT_PRICE = (OrderEvent.CANCEL,)
MARKET_ORDER_TYPE = "market"
# An order event is identified by the order, the event and its time.
ORDER_KEY = (Order.SYMBOL, Order.ORDER_ID, Order.EVENT, Order.TIMESTAMP)


class Label:
    """Ground-truth episodes written by the scenario generator."""

    EPISODE_ID = "episode_id"
    PATTERN = "pattern"
    SYMBOL = "symbol"
    USER_IDS = "user_ids"
    START = "start"
    END = "end"


LABEL_SCHEMA: dict[str, pl.DataType] = {
    Label.EPISODE_ID: pl.String(),
    Label.PATTERN: pl.String(),
    Label.SYMBOL: pl.String(),
    Label.USER_IDS: pl.String(),
    Label.START: TIMESTAMP_DTYPE,
    Label.END: TIMESTAMP_DTYPE,
}

# Several account ids in one field (labels, alerts) are joined with this separator.
USER_IDS_SEPARATOR = ";"


class Alert:
    """Column names of the alert output contract."""

    ALERT_ID = "alert_id"
    PATTERN = "pattern"
    RISK_LEVEL = "risk_level"
    SCORE = "score"
    SYMBOL = "symbol"
    USER_IDS = "user_ids"
    WINDOW_START = "window_start"
    WINDOW_END = "window_end"
    EXPLANATION = "explanation"
    EVIDENCE = "evidence"
    MODEL_VERSION = "model_version"
    THRESHOLDS = "thresholds"


ALERT_COLUMNS = (
    Alert.ALERT_ID,
    Alert.PATTERN,
    Alert.RISK_LEVEL,
    Alert.SCORE,
    Alert.SYMBOL,
    Alert.USER_IDS,
    Alert.WINDOW_START,
    Alert.WINDOW_END,
    Alert.EXPLANATION,
    Alert.EVIDENCE,
    Alert.MODEL_VERSION,
    Alert.THRESHOLDS,
)


class Reject:
    """Columns of a rejected input row: where it was, which field failed and why."""

    SOURCE = "source"
    LINE = "line"
    FIELD = "field"
    VALUE = "value"
    REASON = "reason"


REJECT_SCHEMA: dict[str, pl.DataType] = {
    Reject.SOURCE: pl.String(),
    Reject.LINE: pl.Int64(),
    Reject.FIELD: pl.String(),
    Reject.VALUE: pl.String(),
    Reject.REASON: pl.String(),
}


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with the contract's columns and dtypes."""
    return pl.DataFrame(schema=schema)
