"""Negatives: the semantic-negative store, candidate sampling, hard-negative selection, the train loader."""

# Fields the plugin's train loader adds to every batch (read by the models' ``calculate_loss``).
SEMANTIC_FIELD = "semantic_neg_emb"  # float [B, store_dim]: store row of each (user, positive) pair
SEMANTIC_MASK_FIELD = "semantic_neg_mask"  # bool [B]: False where the pair has no stored negative
CANDIDATES_FIELD = "neg_candidates"  # long [B, M]: uniformly drawn items the user never trained on
SEMANTIC_POOL_FIELD = "semantic_pool"  # long [B, K]: items near a semantic query (semdns)
SEMANTIC_POOL_MASK_FIELD = "semantic_pool_mask"  # bool [B, K]: False where a positive was redrawn
