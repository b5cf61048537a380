"""What the models are fed: window layouts, frozen evaluation candidates, evaluation cases."""
