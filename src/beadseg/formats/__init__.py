"""The file formats beadseg writes, each written whole or not at all: label and map TIFFs (OME-TIFF, OME-Zarr),
count overlays, Fiji ROI sets and QuPath GeoJSON."""
