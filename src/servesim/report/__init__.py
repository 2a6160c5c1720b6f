"""Reports for people: terminal tables now; HTML reports later."""
