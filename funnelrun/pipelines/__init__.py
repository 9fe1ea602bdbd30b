"""Entry-point pipelines on top of build, training and evaluation: nothing below imports them."""
