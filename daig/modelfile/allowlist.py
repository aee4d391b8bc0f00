"""The built-in Keras objects an uploaded model may name. Anything else is refused.

Left out on purpose: ``Attention``, which Keras 3.15 saves to ``.h5`` but cannot load back
(its ``score_mode`` is deserialized as a function), so it would fail on every provider.

Names are Keras class names as they appear in a saved configuration (``class_name``), or
function names where Keras stores a function by name (activations, losses, metrics).
"""

from __future__ import annotations

MODELS = frozenset({"Sequential", "Functional", "Model"})

LAYERS = frozenset(
    {
        "InputLayer",
        "Dense",
        "EinsumDense",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "Flatten",
        "Reshape",
        "Permute",
        "RepeatVector",
        "Activation",
        "ActivityRegularization",
        "Masking",
        "Identity",
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "UnitNormalization",
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "SeparableConv1D",
        "SeparableConv2D",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
        "Embedding",
        "SimpleRNN",
        "LSTM",
        "GRU",
        "SimpleRNNCell",
        "LSTMCell",
        "GRUCell",
        "Bidirectional",
        "TimeDistributed",
        "ConvLSTM1D",
        "ConvLSTM2D",
        "Concatenate",
        "Add",
        "Subtract",
        "Multiply",
        "Average",
        "Maximum",
        "Minimum",
        "Dot",
        "ReLU",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "Softmax",
        "ThresholdedReLU",
        "MultiHeadAttention",
        "AdditiveAttention",
        "Rescaling",
    }
)

SUPPORTING = frozenset(
    {
        # initializers
        "GlorotUniform",
        "GlorotNormal",
        "HeNormal",
        "HeUniform",
        "LecunNormal",
        "LecunUniform",
        "Zeros",
        "Ones",
        "Constant",
        "RandomNormal",
        "RandomUniform",
        "TruncatedNormal",
        "Orthogonal",
        "Identity",
        "VarianceScaling",
        "IdentityInitializer",
        # regularizers and constraints
        "L1",
        "L2",
        "L1L2",
        "OrthogonalRegularizer",
        "MaxNorm",
        "MinMaxNorm",
        "NonNeg",
        "UnitNorm",
        # dtype policies (Keras 3 and Keras 2 mixed precision)
        "DTypePolicy",
        "FloatDTypePolicy",
        "Policy",
        # how Keras 3 serializes a tuple inside a configuration
        "__tuple__",
        # how Keras 3 serializes the connections between a functional model's layers
        "__keras_tensor__",
    }
)

OPTIMIZERS = frozenset(
    {
        "Adam",
        "AdamW",
        "SGD",
        "RMSprop",
        "Adagrad",
        "Adadelta",
        "Adamax",
        "Nadam",
        "Ftrl",
        "Lion",
        "Adafactor",
    }
)

SCHEDULES = frozenset(
    {
        "ExponentialDecay",
        "PiecewiseConstantDecay",
        "PolynomialDecay",
        "InverseTimeDecay",
        "CosineDecay",
        "CosineDecayRestarts",
    }
)

LOSS_CLASSES = frozenset(
    {
        "BinaryCrossentropy",
        "BinaryFocalCrossentropy",
        "CategoricalCrossentropy",
        "CategoricalFocalCrossentropy",
        "SparseCategoricalCrossentropy",
        "MeanSquaredError",
        "MeanAbsoluteError",
        "MeanAbsolutePercentageError",
        "MeanSquaredLogarithmicError",
        "Huber",
        "LogCosh",
        "Hinge",
        "SquaredHinge",
        "CategoricalHinge",
        "KLDivergence",
        "Poisson",
        "CosineSimilarity",
    }
)

LOSS_FUNCTIONS = frozenset(
    {
        "binary_crossentropy",
        "binary_focal_crossentropy",
        "categorical_crossentropy",
        "categorical_focal_crossentropy",
        "sparse_categorical_crossentropy",
        "mean_squared_error",
        "mean_absolute_error",
        "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error",
        "mse",
        "mae",
        "mape",
        "msle",
        "huber",
        "huber_loss",
        "log_cosh",
        "logcosh",
        "hinge",
        "squared_hinge",
        "categorical_hinge",
        "kl_divergence",
        "kld",
        "kullback_leibler_divergence",
        "poisson",
        "cosine_similarity",
    }
)

METRIC_CLASSES = frozenset(
    {
        "Accuracy",
        "BinaryAccuracy",
        "CategoricalAccuracy",
        "SparseCategoricalAccuracy",
        "TopKCategoricalAccuracy",
        "SparseTopKCategoricalAccuracy",
        "AUC",
        "Precision",
        "Recall",
        "MeanSquaredError",
        "MeanAbsoluteError",
        "RootMeanSquaredError",
        "MeanAbsolutePercentageError",
        "MeanSquaredLogarithmicError",
        "CosineSimilarity",
        "LogCoshError",
        "MeanMetricWrapper",
        "BinaryCrossentropy",
        "CategoricalCrossentropy",
        "SparseCategoricalCrossentropy",
        "KLDivergence",
        "Poisson",
        "Hinge",
        "SquaredHinge",
        "CategoricalHinge",
    }
)

METRIC_FUNCTIONS = LOSS_FUNCTIONS | frozenset(
    {
        "accuracy",
        "acc",
        "binary_accuracy",
        "categorical_accuracy",
        "sparse_categorical_accuracy",
        "top_k_categorical_accuracy",
        "sparse_top_k_categorical_accuracy",
        "crossentropy",
        "ce",
    }
)

ACTIVATIONS = frozenset(
    {
        "relu",
        "sigmoid",
        "softmax",
        "tanh",
        "linear",
        "elu",
        "selu",
        "softplus",
        "softsign",
        "swish",
        "silu",
        "gelu",
        "exponential",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "leaky_relu",
        "relu6",
        "mish",
        "log_softmax",
        "log_sigmoid",
        "celu",
        "glu",
        "hard_tanh",
        "sparse_plus",
        "soft_shrink",
        "hard_shrink",
        "tanh_shrink",
        "squareplus",
        "sparsemax",
        "threshold",
        None,
    }
)

CLASSES = MODELS | LAYERS | SUPPORTING | OPTIMIZERS | SCHEDULES | LOSS_CLASSES | METRIC_CLASSES
FUNCTIONS = ACTIVATIONS | LOSS_FUNCTIONS | METRIC_FUNCTIONS

# Configuration keys whose string value names a function.
FUNCTION_KEYS = frozenset({"activation", "recurrent_activation", "fn"})

# tf-keras writes built-in optimizers as "Custom>Adam"; the prefix does not make them custom.
KERAS2_OPTIMIZER_PREFIX = "Custom>"
