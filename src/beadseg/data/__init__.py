"""Reading bead images and masks: files of any format, folders of pairs, synthetic and composite beads, splits."""
