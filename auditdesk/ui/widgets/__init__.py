"""Small reusable widgets: charts drawn with QPainter, the plain-text answer view, dialogs."""
