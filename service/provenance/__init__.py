"""Where an image says it comes from: C2PA Content Credentials and unsigned metadata hints."""
