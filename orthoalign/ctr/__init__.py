"""Click prediction: a target domain's labelled impressions, helped by source domains."""
