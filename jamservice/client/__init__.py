"""Client-side helpers for jamservice."""
