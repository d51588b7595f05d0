"""Patient identity by the national health identity (INS): codec, extraction, rules, review."""
