"""The bead domain, beadseg's ground floor: bead instances from masks and maps, measuring them, the rules that tell
beads from debris, clumps and particles, the classical detector and label QA. It imports nothing of beadseg's above
it."""
