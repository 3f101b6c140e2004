"""Prices for a tiny shop: the example project of plans/fix-tests.yaml. It has one bug."""


def apply_discount(price: float, percent: float) -> float:
    """The price after taking `percent` per cent off it, to the cent."""
    if not 0 <= percent <= 100:
        raise ValueError(f"a discount of {percent}% makes no sense")
    return round(price * percent / 100, 2)


def total(prices: list[float], percent: float = 0) -> float:
    """What the prices come to, each with the discount."""
    return round(sum(apply_discount(price, percent) for price in prices), 2)
