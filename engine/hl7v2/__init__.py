"""HL7 v2 codec: a lazy reader, escaping, character sets and structural ACK building."""
