"""The Textual app: renders engine events, calls engine methods, nothing more."""
