"""Placeholder replaced below."""
def run_scale(worlds: list[str], sizes: tuple[int, ...], seconds: float) -> list[str]:
    return []
