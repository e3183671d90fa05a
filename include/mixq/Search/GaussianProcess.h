//===- GaussianProcess.h - GP regression with an RBF kernel ------*- C++ -*-===//
//
// Zero-mean GP on standardised targets with the isotropic RBF kernel
//   k(x, x') = sf2 * exp(-|x - x'|^2 / (2 l^2)) + sn2 * [x == x']
// over inputs normalised to [0, 1] per dimension (by given bounds, or the
// training data's range). Hyperparameters (l, sf2, sn2) maximise the log
// marginal likelihood: BFGS on their logarithms with the analytic gradient,
// from several restarts. Everything rests on one Cholesky factor of K.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_GAUSSIANPROCESS_H
#define MIXQ_SEARCH_GAUSSIANPROCESS_H

#include "llvm/Support/Error.h"

#include <Eigen/Core>
#include <Eigen/Cholesky>

#include <cstdint>

namespace mixq::search {

struct GPHyperparameters {
  double lengthscale = 1.0;
  double signalVariance = 1.0; ///< sf2, in standardised target units
  double noiseVariance = 1e-4; ///< sn2, in standardised target units
};

struct GPFitOptions {
  bool optimize = true;  ///< maximise the log marginal likelihood
  int restarts = 4;      ///< random starts besides the default one
  int maxIterations = 50;
  uint64_t seed = 1;
  double minNoise = 1e-6; ///< lower bound of sn2
};

class GaussianProcess {
public:
  /// Fixes the input box used for normalisation (otherwise the training
  /// data's per-dimension range).
  void setInputBounds(Eigen::VectorXd lower, Eigen::VectorXd upper);

  /// Fits to n rows of `x` (n x d) and targets `y` (n). With
  /// `opts.optimize`, `init` is the first start; otherwise it is used as is.
  llvm::Error fit(const Eigen::MatrixXd &x, const Eigen::VectorXd &y,
                  const GPFitOptions &opts = {},
                  GPHyperparameters init = {});

  /// Posterior mean and variance (of the latent function, in target units)
  /// at the rows of `xs`.
  void predict(const Eigen::MatrixXd &xs, Eigen::VectorXd &mean,
               Eigen::VectorXd &variance) const;

  /// Log marginal likelihood of the standardised targets under `h`, and its
  /// gradient with respect to (log l, log sf2, log sn2) if `grad` is set.
  /// Returns -infinity if K is not positive definite.
  double logMarginalLikelihood(const GPHyperparameters &h,
                               Eigen::Vector3d *grad = nullptr) const;

  /// Computes prediction kernels in single precision (about 1.5x faster on
  /// large candidate pools; means and variances stay double). Off by default.
  void setSinglePrecisionKernel(bool on) { singleKernel = on; }

  const GPHyperparameters &hyperparameters() const { return hyper; }
  int numObservations() const { return static_cast<int>(xn.rows()); }

private:
  struct LmlEval;
  /// The log marginal likelihood under `h`, keeping the factorisation in
  /// `ev` (-infinity if K is not positive definite).
  double lmlValue(const GPHyperparameters &h, LmlEval &ev) const;
  /// Its gradient with respect to (log l, log sf2, log sn2), from `ev`.
  Eigen::Vector3d lmlGradient(const GPHyperparameters &h,
                              const LmlEval &ev) const;
  Eigen::MatrixXd normalize(const Eigen::MatrixXd &x) const;
  void factorize();

  Eigen::VectorXd lo, hi;
  bool fixedBounds = false;
  bool singleKernel = false;
  Eigen::MatrixXd xn;      ///< normalised training inputs
  Eigen::MatrixXd sqDist;  ///< pairwise squared distances of xn
  Eigen::VectorXd ys;      ///< standardised targets
  double yMean = 0, yStd = 1;
  GPHyperparameters hyper;
  Eigen::LLT<Eigen::MatrixXd> chol;
  Eigen::VectorXd alpha;   ///< K^-1 ys
  Eigen::MatrixXd lInvT;   ///< (L^-1)^T of K = L L^T
};

/// Expected improvement over `best` for maximisation, with margin `xi`.
double expectedImprovement(double mean, double sigma, double best,
                           double xi = 0.0);
/// Upper confidence bound mean + kappa * sigma.
double upperConfidenceBound(double mean, double sigma, double kappa);

} // namespace mixq::search

#endif // MIXQ_SEARCH_GAUSSIANPROCESS_H
