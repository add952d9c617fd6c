"""Built-in plugins: registered through the `kez` entry points like any other."""
