//! Figures as PNG: atom grids and reconstruction panels for image data.
