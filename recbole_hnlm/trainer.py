"""The trainer of the plugin's models: RecBole's ``Trainer`` that tells the model the current epoch.

Epoch-dependent samplers (DENS's warm-up) read ``model.current_epoch``; everything else is RecBole's.
"""

from __future__ import annotations

from recbole.trainer import Trainer


class HNLMTrainer(Trainer):
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.model.current_epoch = epoch_idx
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
