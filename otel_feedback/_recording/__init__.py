"""The recording side: record_feedback, its handles, targets, carriers and tokens."""
