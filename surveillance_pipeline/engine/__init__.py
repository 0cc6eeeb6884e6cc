"""The detection engine: rule findings and model scores combined into explained, de-duplicated alerts."""
