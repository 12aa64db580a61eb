"""Learning rules: local (coupled learning, the lab's discrete rule, equilibrium propagation),
global (gradient descent), and `desync`, which wraps any of them."""

from ._base import Rule as Rule
from ._coupled import CoupledLearning as CoupledLearning, coupled_learning as coupled_learning
from ._desync import Desync as Desync, desync as desync
from ._equilibrium import (
    EquilibriumPropagation as EquilibriumPropagation,
    equilibrium_propagation as equilibrium_propagation,
)
from ._discrete import Discrete as Discrete, DiscreteState as DiscreteState, discrete as discrete
from ._gradient import GradientDescent as GradientDescent, gradient_descent as gradient_descent
