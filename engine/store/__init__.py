"""The shared record store: patients, their identifiers, encounters and observations."""
