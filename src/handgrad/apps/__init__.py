"""Applications built on the core library: detection by sliding the classifier (``detection``,
``scenes``), reuse of trained layers (``transfer``) and pictures of filters and feature maps
(``visualize``) — ``003`` §6."""
