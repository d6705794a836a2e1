"""beadseg in napari (``pip install 'beadseg[napari]'``): a reader for beadseg-predict output folders and a dock
widget that counts beads in an image layer. The npe2 manifest is ``napari.yaml`` beside this file."""
