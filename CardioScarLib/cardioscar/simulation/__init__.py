"""From a reconstructed scar field to a simulation model: tissue tags and simulator files."""
